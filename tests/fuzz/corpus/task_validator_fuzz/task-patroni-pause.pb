
t-patroni-pause‚