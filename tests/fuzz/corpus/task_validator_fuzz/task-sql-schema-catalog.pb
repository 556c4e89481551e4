
t-sql-schema-catalogj