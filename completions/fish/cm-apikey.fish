# fish completion for cm-apikey

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

function __claudemesh_topics
    cm-topic list --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-apikey -f
complete -c cm-apikey -s h -l help -d 'print this help'
complete -c cm-apikey -l version -d 'print the version'
complete -c cm-apikey -l json -d 'write JSON Lines: one object per line'
complete -c cm-apikey -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-apikey -n __fish_use_subcommand -a create -d 'make a key and print its secret once'
complete -c cm-apikey -n __fish_use_subcommand -a new -d 'make a key and print its secret once'
complete -c cm-apikey -n __fish_use_subcommand -a issue -d 'make a key and print its secret once'
complete -c cm-apikey -n __fish_use_subcommand -a list -d 'list keys'
complete -c cm-apikey -n __fish_use_subcommand -a ls -d 'list keys'
complete -c cm-apikey -n __fish_use_subcommand -a revoke -d 'revoke a key by its id or the start of it'
complete -c cm-apikey -n __fish_use_subcommand -a rm -d 'revoke a key by its id or the start of it'
complete -c cm-apikey -n '__fish_seen_subcommand_from create new issue' -l cap -x -a 'send,read read send state_write admin' -d 'what it may do: send,read,state_write,admin (default send,read)'
complete -c cm-apikey -n '__fish_seen_subcommand_from create new issue' -l scope -x -a '(__claudemesh_topics)' -d 'only this topic (repeat for several)'
complete -c cm-apikey -n '__fish_seen_subcommand_from create new issue' -l expires -x -d 'stop working after a duration (30d) or at a time'
