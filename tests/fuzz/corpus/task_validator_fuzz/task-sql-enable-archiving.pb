
t-sql-enable-archivingj	m1 