
t-pgbackrest-backup-fullêb
m1r
fulllz4