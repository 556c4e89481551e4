
t-service-startr<