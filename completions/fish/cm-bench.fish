# fish completion for cm-bench

complete -c cm-bench -f
complete -c cm-bench -l broker -x -d 'the broker to measure: ws://HOST:PORT/ws; again for brokers of one database, connections spread over them'
complete -c cm-bench -s n -l peers -x -d 'peers (dm, fanout, topic) or connections (idle); defaults 100, 1000, 100, 10000'
complete -c cm-bench -s m -l messages -x -d 'messages per peer (dm), broadcasts (fanout), posts (topic) or runs (cold); defaults 1000, 20, 1000, 50'
complete -c cm-bench -l size -x -d 'plaintext bytes per message, default 256'
complete -c cm-bench -l window -x -d 'dm, topic: sends a peer keeps waiting for their ack, default 1'
complete -c cm-bench -l rate -x -d 'dm, topic: send this many messages per second in all, on a schedule'
complete -c cm-bench -l members -r -F -d 'members of an existing mesh to speak as: JSON lines of meshId, memberId, pubkey, secretKey'
complete -c cm-bench -l broker-pid -x -d 'the broker\'s process id, for its CPU and memory (found by port when local); one per --broker'
complete -c cm-bench -l cm-send -r -F -d 'the cm-send binary cold runs, default the one next to cm-bench'
complete -c cm-bench -s h -l help -d 'print this help'
complete -c cm-bench -l version -d 'print the version'
complete -c cm-bench -l json -d 'write JSON Lines: one object per line'
complete -c cm-bench -n '__fish_use_subcommand' -a 'dm fanout idle cold topic'
