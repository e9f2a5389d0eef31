# fish completion for cm-state

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-state -f
complete -c cm-state -s h -l help -d 'print this help'
complete -c cm-state -l version -d 'print the version'
complete -c cm-state -l json -d 'write JSON Lines: one object per line'
complete -c cm-state -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-state -n __fish_use_subcommand -a get -d 'print a key\'s value'
complete -c cm-state -n __fish_use_subcommand -a set -d 'set a key to a JSON value or a string'
complete -c cm-state -n __fish_use_subcommand -a put -d 'set a key to a JSON value or a string'
complete -c cm-state -n __fish_use_subcommand -a list -d 'list every key'
complete -c cm-state -n __fish_use_subcommand -a ls -d 'list every key'
complete -c cm-state -n __fish_use_subcommand -a del -d 'delete a key'
complete -c cm-state -n __fish_use_subcommand -a rm -d 'delete a key'
complete -c cm-state -n __fish_use_subcommand -a delete -d 'delete a key'
complete -c cm-state -n __fish_use_subcommand -a watch -d 'print changes to keys as they happen'
complete -c cm-state -n '__fish_seen_subcommand_from set put' -l if-version -x -d 'write only if the key is at version N (0: only if it is not set)'
complete -c cm-state -n '__fish_seen_subcommand_from del rm delete' -l if-version -x -d 'write only if the key is at version N (0: only if it is not set)'
