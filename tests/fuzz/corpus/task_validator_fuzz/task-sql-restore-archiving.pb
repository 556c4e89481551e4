
t-sql-restore-archivingj
m1