R
P
db1inc-1	
0.1.0"7
db1.example.internal2/var/lib/postgresql/15/mainb
÷Бо╙
÷Бо╙
┘Бо╙