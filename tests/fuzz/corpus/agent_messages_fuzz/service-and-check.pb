
t-service-statusr<US
t-checkzH
orders-open.sql0SELECT count(*) FROM orders WHERE state = 'open'app*	
t-check"
t-service-statusc