
#t-pgbackrest-backup-incr-new-stanzab
m1r
incr