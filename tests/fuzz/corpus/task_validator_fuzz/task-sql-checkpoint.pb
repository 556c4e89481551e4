
t-sql-checkpointj