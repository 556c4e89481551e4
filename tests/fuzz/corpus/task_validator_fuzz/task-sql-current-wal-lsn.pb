
t-sql-current-wal-lsnj