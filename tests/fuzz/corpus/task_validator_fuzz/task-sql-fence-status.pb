
t-sql-fence-statusjm1