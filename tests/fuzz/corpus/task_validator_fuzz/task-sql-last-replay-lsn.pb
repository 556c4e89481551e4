
t-sql-last-replay-lsnj