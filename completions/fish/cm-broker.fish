# fish completion for cm-broker

complete -c cm-broker -f
complete -c cm-broker -l listen -x -d 'address to listen on, default 127.0.0.1:7900 (port 0 picks a free port)'
complete -c cm-broker -l data -x -a '(__fish_complete_directories)' -d 'data directory, default $XDG_DATA_HOME/claudemesh-broker'
complete -c cm-broker -l database-url -x -d 'keep everything in this PostgreSQL database (postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME) instead of SQLite under --data; default $DATABASE_URL'
complete -c cm-broker -l admin-token -x -d 'token that lets non-loopback clients create meshes'
complete -c cm-broker -l log-format -x -a 'text json' -d 'log lines as text or json (default text; json with --json)'
complete -c cm-broker -l max-conns-per-addr -x -d 'connections one IP address may hold once their request is in, default 4096 (as many more may be sending theirs; each gets 5 s)'
complete -c cm-broker -l max-conns-per-mesh -x -d 'live presences one mesh may hold, default 1000'
complete -c cm-broker -l rate-limit -x -d 'sends per second per member and burst, default 50:100 (0 turns it off)'
complete -c cm-broker -l lease -x -d 'seconds a pushed message waits for its ack before it is pushed again, default 30'
complete -c cm-broker -l task-lease -x -d 'seconds a task\'s claim outlives the claimer\'s last live session, default 600'
complete -c cm-broker -l max-file-size -x -d 'largest file upload in bytes, default 50000000'
complete -c cm-broker -l tls-cert -r -F -d 'serve wss:// and https:// with this PEM certificate chain (leaf first); needs --tls-key'
complete -c cm-broker -l tls-key -r -F -d 'the PEM private key of --tls-cert; both files are read again on SIGHUP'
complete -c cm-broker -s h -l help -d 'print this help'
complete -c cm-broker -l version -d 'print the version'
complete -c cm-broker -l json -d 'write JSON Lines: one object per line'
