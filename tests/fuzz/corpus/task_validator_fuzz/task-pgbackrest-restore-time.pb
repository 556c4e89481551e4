
t-pgbackrest-restore-timeêbG
m1zAtime2024-05-01 13:45:00+00"promote*20240501-134500F2latest