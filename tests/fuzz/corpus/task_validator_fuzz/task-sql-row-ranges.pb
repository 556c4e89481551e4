
t-sql-row-rangesj*
apppublicorders8