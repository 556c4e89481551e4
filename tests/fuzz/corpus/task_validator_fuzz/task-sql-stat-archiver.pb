
t-sql-stat-archiverj