
t-sql-set-wal-retrieve-retryj@ú