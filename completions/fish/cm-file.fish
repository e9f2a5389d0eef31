# fish completion for cm-file

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

function __claudemesh_peers
    cm-peers --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

function __claudemesh_topics
    cm-topic list --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-file -f
complete -c cm-file -s h -l help -d 'print this help'
complete -c cm-file -l version -d 'print the version'
complete -c cm-file -l json -d 'write JSON Lines: one object per line'
complete -c cm-file -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-file -n __fish_use_subcommand -a put -d 'encrypt a file and store it on the broker'
complete -c cm-file -n __fish_use_subcommand -a share -d 'encrypt a file and store it on the broker'
complete -c cm-file -n __fish_use_subcommand -a upload -d 'encrypt a file and store it on the broker'
complete -c cm-file -n __fish_use_subcommand -a get -d 'download and decrypt a file'
complete -c cm-file -n __fish_use_subcommand -a download -d 'download and decrypt a file'
complete -c cm-file -n __fish_use_subcommand -a list -d 'list the files you uploaded or that were shared with you'
complete -c cm-file -n __fish_use_subcommand -a ls -d 'list the files you uploaded or that were shared with you'
complete -c cm-file -n __fish_use_subcommand -a rm -d 'delete a file from the broker (uploader or admin)'
complete -c cm-file -n __fish_use_subcommand -a remove -d 'delete a file from the broker (uploader or admin)'
complete -c cm-file -n __fish_use_subcommand -a delete -d 'delete a file from the broker (uploader or admin)'
complete -c cm-file -n '__fish_seen_subcommand_from put share upload' -l to -x -a '(__claudemesh_peers)' -d 'share with a peer, a key, @group or *'
complete -c cm-file -n '__fish_seen_subcommand_from put share upload' -l topic -x -a '(__claudemesh_topics)' -d 'share with a topic\'s members'
complete -c cm-file -n '__fish_seen_subcommand_from put share upload' -F
complete -c cm-file -n '__fish_seen_subcommand_from get download' -s o -l output -r -F -d 'where to write it (a directory keeps the file\'s name)'
complete -c cm-file -n '__fish_seen_subcommand_from get download' -l force -d 'replace an existing file'
