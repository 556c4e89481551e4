
t-service-statusr<