
t-sql-switch-walj