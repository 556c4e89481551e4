
t-sql-unfencejm1