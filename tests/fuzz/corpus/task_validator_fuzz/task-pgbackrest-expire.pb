
t-pgbackrest-expireêb*
m1ä#
!20240501-134500F_20240502-010000D