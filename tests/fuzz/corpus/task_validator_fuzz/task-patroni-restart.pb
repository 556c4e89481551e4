
t-patroni-restart‚