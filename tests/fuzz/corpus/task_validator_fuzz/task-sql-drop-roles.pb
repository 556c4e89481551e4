
t-sql-drop-rolesjR

operator