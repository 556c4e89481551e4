
t-pgbackrest-restore-lsnb
m1zlsn	0/3000060"pause