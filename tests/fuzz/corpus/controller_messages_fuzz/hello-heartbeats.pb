R
P
db1inc-1	
0.1.0"7
db1.example.internal2/var/lib/postgresql/15/mainb
âÏª
‚âÏªg"e
c
db1.example.internalbKIconnection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed"

db1.example.internalb
ƒâÏª