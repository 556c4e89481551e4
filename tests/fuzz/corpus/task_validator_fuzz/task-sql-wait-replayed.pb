
t-sql-wait-replayedjx:
0/12000028