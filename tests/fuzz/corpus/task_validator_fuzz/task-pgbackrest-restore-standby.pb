
t-pgbackrest-restore-standbyb
m1zstandby8@ú