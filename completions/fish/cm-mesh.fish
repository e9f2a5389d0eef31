# fish completion for cm-mesh

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-mesh -f
complete -c cm-mesh -s h -l help -d 'print this help'
complete -c cm-mesh -l version -d 'print the version'
complete -c cm-mesh -l json -d 'write JSON Lines: one object per line'
complete -c cm-mesh -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-mesh -n __fish_use_subcommand -a new -d 'create a mesh and join it'
complete -c cm-mesh -n __fish_use_subcommand -a create -d 'create a mesh and join it'
complete -c cm-mesh -n __fish_use_subcommand -a list -d 'list the meshes joined here'
complete -c cm-mesh -n __fish_use_subcommand -a ls -d 'list the meshes joined here'
complete -c cm-mesh -n __fish_use_subcommand -a rename -d 'change a mesh\'s local slug'
complete -c cm-mesh -n __fish_use_subcommand -a leave -d 'forget a mesh on this machine'
complete -c cm-mesh -n __fish_use_subcommand -a invite -d 'make an invite link (owner only)'
complete -c cm-mesh -n __fish_use_subcommand -a share -d 'make an invite link (owner only)'
complete -c cm-mesh -n __fish_use_subcommand -a join -d 'join the mesh an invite is for'
complete -c cm-mesh -n __fish_use_subcommand -a add -d 'join the mesh an invite is for'
complete -c cm-mesh -n __fish_use_subcommand -a members -d 'list the mesh\'s members and who is online'
complete -c cm-mesh -n __fish_use_subcommand -a member -d 'list the mesh\'s members and who is online'
complete -c cm-mesh -n '__fish_seen_subcommand_from new create' -l broker -x -d 'the broker to create it on'
complete -c cm-mesh -n '__fish_seen_subcommand_from new create' -l name -x -d 'your display name in the mesh'
complete -c cm-mesh -n '__fish_seen_subcommand_from rename' -a '(__claudemesh_meshes)'
complete -c cm-mesh -n '__fish_seen_subcommand_from leave' -l forget-owner-key -d 'also delete the mesh\'s owner key (nobody can invite to it after that)'
complete -c cm-mesh -n '__fish_seen_subcommand_from leave' -a '(__claudemesh_meshes)'
complete -c cm-mesh -n '__fish_seen_subcommand_from invite share' -l expires -x -d 'how long the link works, default 7d'
complete -c cm-mesh -n '__fish_seen_subcommand_from invite share' -l role -x -a 'member admin' -d 'the role joiners get, default member'
complete -c cm-mesh -n '__fish_seen_subcommand_from invite share' -l uses -x -d 'how many joins it allows, default 1'
complete -c cm-mesh -n '__fish_seen_subcommand_from join add' -l name -x -d 'your display name in the mesh'
