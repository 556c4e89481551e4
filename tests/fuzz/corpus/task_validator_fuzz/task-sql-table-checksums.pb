
t-sql-table-checksumsj