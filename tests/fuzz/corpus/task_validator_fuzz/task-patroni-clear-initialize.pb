
t-patroni-clear-initialize‚