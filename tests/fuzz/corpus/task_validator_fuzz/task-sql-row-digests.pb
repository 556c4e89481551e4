
t-sql-row-digestsj)*%
apppublicorders"
1000*
2000