
t-service-stopr
fast<