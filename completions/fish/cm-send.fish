# fish completion for cm-send

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

function __claudemesh_peers
    cm-peers --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-send -f
complete -c cm-send -s p -l priority -x -a 'now next low' -d 'now, next (the default) or low'
complete -c cm-send -l reply-to -x -d 'mark the message as an answer to message ID'
complete -c cm-send -l stdin -d 'send each line of standard input as a message'
complete -c cm-send -l client-id -x -d 'the message\'s client id: a message sent again with the same id is stored once'
complete -c cm-send -s h -l help -d 'print this help'
complete -c cm-send -l version -d 'print the version'
complete -c cm-send -l json -d 'write JSON Lines: one object per line'
complete -c cm-send -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-send -n '__fish_use_subcommand' -a '(__claudemesh_peers)'
