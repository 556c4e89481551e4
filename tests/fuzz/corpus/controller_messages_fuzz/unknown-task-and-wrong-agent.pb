R
P
db2inc-1	
0.1.0"7
db2.example.internal2/var/lib/postgresql/15/mainb'%
t-sqlåâÏª"
stdoutnot mine'%
t-nopeåâÏª"
stdoutunknown