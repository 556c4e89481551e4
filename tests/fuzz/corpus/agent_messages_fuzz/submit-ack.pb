

controller-1Ð	
0.1.0
t-sql-switch-walj"
t-sql-switch-wal"
t-sql-switch-wal