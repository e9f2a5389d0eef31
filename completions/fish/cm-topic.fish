# fish completion for cm-topic

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

function __claudemesh_topics
    cm-topic list --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-topic -f
complete -c cm-topic -s h -l help -d 'print this help'
complete -c cm-topic -l version -d 'print the version'
complete -c cm-topic -l json -d 'write JSON Lines: one object per line'
complete -c cm-topic -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-topic -n __fish_use_subcommand -a create -d 'create a topic (encrypted unless --plaintext)'
complete -c cm-topic -n __fish_use_subcommand -a new -d 'create a topic (encrypted unless --plaintext)'
complete -c cm-topic -n __fish_use_subcommand -a list -d 'list the topics you can see, with unread counts'
complete -c cm-topic -n __fish_use_subcommand -a ls -d 'list the topics you can see, with unread counts'
complete -c cm-topic -n __fish_use_subcommand -a join -d 'join a topic'
complete -c cm-topic -n __fish_use_subcommand -a leave -d 'leave a topic'
complete -c cm-topic -n __fish_use_subcommand -a members -d 'list a topic\'s members and who is online'
complete -c cm-topic -n __fish_use_subcommand -a post -d 'post a message'
complete -c cm-topic -n __fish_use_subcommand -a send -d 'post a message'
complete -c cm-topic -n __fish_use_subcommand -a tail -d 'print the last messages, then follow new ones until Ctrl-C'
complete -c cm-topic -n __fish_use_subcommand -a follow -d 'print the last messages, then follow new ones until Ctrl-C'
complete -c cm-topic -n __fish_use_subcommand -a history -d 'print a page of history, oldest first'
complete -c cm-topic -n __fish_use_subcommand -a log -d 'print a page of history, oldest first'
complete -c cm-topic -n __fish_use_subcommand -a read -d 'mark a topic read'
complete -c cm-topic -n __fish_use_subcommand -a mark-read -d 'mark a topic read'
complete -c cm-topic -n '__fish_seen_subcommand_from create new' -l description -x -d 'what the topic is for'
complete -c cm-topic -n '__fish_seen_subcommand_from create new' -l visibility -x -a 'public private' -d 'who may join: public (default) or private'
complete -c cm-topic -n '__fish_seen_subcommand_from create new' -l plaintext -d 'no topic key: messages are stored as base64 text'
complete -c cm-topic -n '__fish_seen_subcommand_from join' -a '(__claudemesh_topics)'
complete -c cm-topic -n '__fish_seen_subcommand_from leave' -a '(__claudemesh_topics)'
complete -c cm-topic -n '__fish_seen_subcommand_from members' -a '(__claudemesh_topics)'
complete -c cm-topic -n '__fish_seen_subcommand_from post send' -l reply-to -x -d 'answer this message (its id, or 6+ of its first characters)'
complete -c cm-topic -n '__fish_seen_subcommand_from post send' -l plaintext -d 'post base64 text (only to a topic without a key)'
complete -c cm-topic -n '__fish_seen_subcommand_from post send' -a '(__claudemesh_topics)'
complete -c cm-topic -n '__fish_seen_subcommand_from tail follow' -s n -l limit -x -d 'how many past messages to print first (default 20)'
complete -c cm-topic -n '__fish_seen_subcommand_from tail follow' -a '(__claudemesh_topics)'
complete -c cm-topic -n '__fish_seen_subcommand_from history log' -s n -l limit -x -d 'how many messages (1-200, default 20)'
complete -c cm-topic -n '__fish_seen_subcommand_from history log' -l before -x -d 'only messages older than this one'
complete -c cm-topic -n '__fish_seen_subcommand_from history log' -a '(__claudemesh_topics)'
complete -c cm-topic -n '__fish_seen_subcommand_from read mark-read' -a '(__claudemesh_topics)'
