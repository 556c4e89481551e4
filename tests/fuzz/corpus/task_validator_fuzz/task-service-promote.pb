
t-service-promoter<