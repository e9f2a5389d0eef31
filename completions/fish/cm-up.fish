# fish completion for cm-up

complete -c cm-up -f
complete -c cm-up -l data -x -a '(__fish_complete_directories)' -d 'the broker\'s data directory, default $XDG_DATA_HOME/claudemesh-broker'
complete -c cm-up -s h -l help -d 'print this help'
complete -c cm-up -l version -d 'print the version'
complete -c cm-up -l json -d 'write JSON Lines: one object per line'
complete -c cm-up -n __fish_use_subcommand -a up -d 'start the broker if needed; make an identity and a mesh if there are none'
complete -c cm-up -n __fish_use_subcommand -a start -d 'start the broker if needed; make an identity and a mesh if there are none'
complete -c cm-up -n __fish_use_subcommand -a down -d 'stop the broker cm up started'
complete -c cm-up -n __fish_use_subcommand -a stop -d 'stop the broker cm up started'
complete -c cm-up -n __fish_use_subcommand -a status -d 'whether the broker cm up started is running'
complete -c cm-up -n '__fish_seen_subcommand_from up start' -l listen -x -d 'where the broker listens, default 127.0.0.1:7900 (port 0 picks a free one)'
complete -c cm-up -n '__fish_seen_subcommand_from up start' -l name -x -d 'your display name, and the first mesh\'s name'
