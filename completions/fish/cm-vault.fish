# fish completion for cm-vault

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

function __claudemesh_peers
    cm-peers --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-vault -f
complete -c cm-vault -s h -l help -d 'print this help'
complete -c cm-vault -l version -d 'print the version'
complete -c cm-vault -l json -d 'write JSON Lines: one object per line'
complete -c cm-vault -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-vault -n __fish_use_subcommand -a set -d 'seal a value and store it'
complete -c cm-vault -n __fish_use_subcommand -a put -d 'seal a value and store it'
complete -c cm-vault -n __fish_use_subcommand -a get -d 'open secrets: to a pipe, with --reveal, or as export lines'
complete -c cm-vault -n __fish_use_subcommand -a list -d 'the secrets you may read, without their values'
complete -c cm-vault -n __fish_use_subcommand -a ls -d 'the secrets you may read, without their values'
complete -c cm-vault -n __fish_use_subcommand -a delete -d 'delete a secret of your own'
complete -c cm-vault -n __fish_use_subcommand -a rm -d 'delete a secret of your own'
complete -c cm-vault -n '__fish_seen_subcommand_from set put' -l for -x -a '(__claudemesh_peers)' -d 'a member (NAME) or group (@group) who may read it besides you (repeat for more)'
complete -c cm-vault -n '__fish_seen_subcommand_from set put' -l type -x -a 'env file' -d 'env (the default) or file'
complete -c cm-vault -n '__fish_seen_subcommand_from set put' -l mount -r -F -d 'where a file secret belongs, for whoever uses it'
complete -c cm-vault -n '__fish_seen_subcommand_from set put' -s d -l description -x -d 'what the secret is for'
complete -c cm-vault -n '__fish_seen_subcommand_from get' -l reveal -d 'print the value on a terminal too'
complete -c cm-vault -n '__fish_seen_subcommand_from get' -s e -l env -d 'print export KEY=\'value\' lines, for eval'
complete -c cm-vault -n '__fish_seen_subcommand_from get' -l from -x -a '(__claudemesh_peers)' -d 'the member whose secret of that key to open, when more than one shared it with you'
