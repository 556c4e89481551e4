
t-sql-promotej<H