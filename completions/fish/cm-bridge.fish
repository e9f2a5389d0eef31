# fish completion for cm-bridge

complete -c cm-bridge -f
complete -c cm-bridge -s h -l help -d 'print this help'
complete -c cm-bridge -l version -d 'print the version'
complete -c cm-bridge -l json -d 'write JSON Lines: one object per line'
complete -c cm-bridge -n __fish_use_subcommand -a run -d 'forward messages as CONFIG says, until SIGINT or SIGTERM'
complete -c cm-bridge -n __fish_use_subcommand -a init -d 'write an example config (cm-bridge.json unless PATH is given)'
complete -c cm-bridge -n '__fish_seen_subcommand_from run' -F
complete -c cm-bridge -n '__fish_seen_subcommand_from init' -F
