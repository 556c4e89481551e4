
t-checkzH
orders-open.sql0SELECT count(*) FROM orders WHERE state = 'open'app