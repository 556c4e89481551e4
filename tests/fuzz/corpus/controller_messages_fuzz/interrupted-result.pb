R
P
db1inc-2	
0.1.0"7
db1.example.internal2/var/lib/postgresql/15/mainbfd
t-configure€€€€€ ÈãÏª2F@pgbackrest exited with 56: [056]: unable to find primary cluster8