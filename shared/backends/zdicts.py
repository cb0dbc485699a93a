"""Preset dictionaries for `codec`: sample documents whose words zlib may point back into.

Never edit one: stored values name the dictionary they were packed with and are unpacked with
exactly these bytes. To improve one, add a new constant and a new kind in `codec`.
"""

__all__ = ["RECORD_V1", "STATE_V1"]

STATE_V1 = (
    '{"schema_version":1,"id":"","session_id":"","version":36,"seed":1,"conversation_'
    'history":[{"turn_id":"","action":"Confront the barrow king","narrative":"The mor'
    "ning smells of woodsmoke and possibility. You confront the barrow king. Steel is"
    ' drawn."},{"turn_id":"","action":"Attack the barrow king","narrative":"The morni'
    "ng smells of woodsmoke and possibility. Your longsword: d20 10 + 5 = 15 vs 13, s"
    "uccess You hit the barrow king for 5 damage. The barrow king's attack: d20 16 + "
    "4 = 20 vs 16, success The barrow king wounds you for 5 damage. You fall before t"
    "he barrow king. The world fades to grey. Epilogue: Here ends the tale of Brannoc"
    ", who fell far from home. They remember how they completed the quest 'The Ember "
    "Thief'; took up the quest 'The Lost Lantern'; completed the quest 'The Lost Lant"
    "ern'; took up the quest 'The Barrow King'; fell in battle against the barrow kin"
    'g."}],"current_choices":[],"character_description":"Play Brannoc, a dwarf fighte'
    'r","character_sheet":{"name":"Brannoc","race":"dwarf","character_class":"fighter'
    '","level":1,"strength":17,"dexterity":14,"constitution":15,"intelligence":9,"wis'
    'dom":14,"charisma":13,"equipment":["longsword","shield","chain shirt","rations"]'
    ',"backstory":"Brannoc left home with little more than a longsword and a vow."},"'
    'health_current":0,"health_max":16,"phase":"combat","combat_state":null,"active_q'
    'uest":{"quest_id":"barrow-king","title":"The Barrow King","description":"The old'
    ' king stirs in his barrow, and his dead soldiers walk the moor.","objectives":["'
    'Find the barrow\'s hidden door","Learn the king\'s true name from the hermit","Def'
    'eat the barrow king"],"completed_objectives":["Find the barrow\'s hidden door","L'
    'earn the king\'s true name from the hermit"],"reward":"the barrow king\'s iron cro'
    'wn"},"quest_options":[],"completed_quests":[{"quest_id":"drowned-bell","title":"'
    'The Drowned Bell","description":"A chapel bell tolls at midnight from beneath th'
    'e marsh, and the villagers are vanishing one by one.","objectives":["Find the pa'
    'th to the sunken chapel","Defeat the bog wight","Ring the drowned bell to lay th'
    'e dead to rest"],"completed_objectives":["Find the path to the sunken chapel","D'
    'efeat the bog wight","Ring the drowned bell to lay the dead to rest"],"reward":"'
    'a blessed silver charm"},{"quest_id":"ember-thief","title":"The Ember Thief","de'
    'scription":"Someone stole the everburning ember from the village forge, and wint'
    'er is coming.","objectives":["Question Hilda the smith","Track the thief into th'
    'e Ashen Hills","Defeat the ember drake whelp"],"completed_objectives":["Question'
    ' Hilda the smith","Track the thief into the Ashen Hills","Defeat the ember drake'
    ' whelp"],"reward":"a sword quenched in the ember\'s fire"},{"quest_id":"lost-lant'
    'ern","title":"The Lost Lantern","description":"The lighthouse keeper\'s lantern w'
    'as taken, and ships are breaking on the rocks.","objectives":["Ask old Maren the'
    ' keeper what she saw","Search the smugglers\' caves","Defeat the lantern thief"],'
    '"completed_objectives":["Ask old Maren the keeper what she saw","Search the smug'
    'glers\' caves","Defeat the lantern thief"],"reward":"the keeper\'s gratitude and a'
    ' map of hidden coves"}],"adventure_turn":36,"adventure_phase":"setup","max_turns'
    '":100000,"adventure_completed":true,"adventure_moments":["set out from the cross'
    'roads inn","took up the quest \'The Drowned Bell\'","defeated the bog wight","comp'
    "leted the quest 'The Drowned Bell'\",\"took up the quest 'The Ember Thief'\",\"compl"
    "eted the quest 'The Ember Thief'\",\"took up the quest 'The Lost Lantern'\",\"comple"
    "ted the quest 'The Lost Lantern'\",\"took up the quest 'The Barrow King'\",\"fell in"
    ' battle against the barrow king"],"location":"the barrow\'s throne room","npc_nam'
    'e":null,"choice_actions":[],"jester_last_turn":-1000}'
)

RECORD_V1 = (
    '{"turn_id":"","session_id":"","status":"queued","action":"Confront the lantern t'
    'hief","choice_index":1,"accepted_at":1795570117.8711963,"started_at":null,"finis'
    'hed_at":null,"attempts":0,"result":null,"error":null}{"turn_id":"","session_id":'
    '"","status":"completed","action":"Confront the lantern thief","choice_index":1,"'
    'accepted_at":1795570117.8711963,"started_at":1795570117.875193,"finished_at":179'
    '5570117.8796217,"attempts":1,"result":{"choices":["Attack the lantern thief","De'
    'fend","Flee"],"state_version":24,"narrator":"offline","usage":null},"error":null'
    "}"
)
