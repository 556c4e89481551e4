
t-service-restartr<