
t-sql-ensure-rolesj›R”
operator"…SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$c3RvcmVkLWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE=:c2VydmVyLWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE=X