42
t-pgbackrest-backup-fullêb
m1r
fulllz4*
t-pgbackrest-backup-full"
t-pgbackrest-backup-full