# fish completion for cm-task

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

function __claudemesh_peers
    cm-peers --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-task -f
complete -c cm-task -s h -l help -d 'print this help'
complete -c cm-task -l version -d 'print the version'
complete -c cm-task -l json -d 'write JSON Lines: one object per line'
complete -c cm-task -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-task -n __fish_use_subcommand -a create -d 'create an open task'
complete -c cm-task -n __fish_use_subcommand -a add -d 'create an open task'
complete -c cm-task -n __fish_use_subcommand -a new -d 'create an open task'
complete -c cm-task -n __fish_use_subcommand -a list -d 'list the mesh\'s tasks, newest first'
complete -c cm-task -n __fish_use_subcommand -a ls -d 'list the mesh\'s tasks, newest first'
complete -c cm-task -n __fish_use_subcommand -a claim -d 'claim an open task; one claimer wins'
complete -c cm-task -n __fish_use_subcommand -a take -d 'claim an open task; one claimer wins'
complete -c cm-task -n __fish_use_subcommand -a complete -d 'mark a task completed and tell its creator'
complete -c cm-task -n __fish_use_subcommand -a done -d 'mark a task completed and tell its creator'
complete -c cm-task -n __fish_use_subcommand -a release -d 'give a claimed task back to open'
complete -c cm-task -n __fish_use_subcommand -a unclaim -d 'give a claimed task back to open'
complete -c cm-task -n __fish_use_subcommand -a watch -d 'print every change to the mesh\'s tasks as it happens'
complete -c cm-task -n __fish_use_subcommand -a follow -d 'print every change to the mesh\'s tasks as it happens'
complete -c cm-task -n '__fish_seen_subcommand_from create add new' -s a -l assignee -x -a '(__claudemesh_peers)' -d 'for this member (create), or tasks of this member (list)'
complete -c cm-task -n '__fish_seen_subcommand_from create add new' -s p -l priority -x -a 'low normal high urgent' -d 'low, normal (the default), high or urgent'
complete -c cm-task -n '__fish_seen_subcommand_from create add new' -s t -l tag -x -d 'a tag for the task (repeat for more)'
complete -c cm-task -n '__fish_seen_subcommand_from list ls' -s s -l status -x -a 'open claimed completed' -d 'only tasks that are open, claimed or completed'
complete -c cm-task -n '__fish_seen_subcommand_from list ls' -s a -l assignee -x -a '(__claudemesh_peers)' -d 'for this member (create), or tasks of this member (list)'
