
t-sql-fence-read-onlyjm1