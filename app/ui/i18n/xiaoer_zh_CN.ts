<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN" sourcelanguage="en">
<context>
    <name>App</name>
    <message>
        <location filename="../app.py" line="81"/>
        <source>Xiaoer cannot start</source>
        <translation>小二无法启动</translation>
    </message>
    <message>
        <location filename="../app.py" line="86"/>
        <source>Settings</source>
        <translation>设置</translation>
    </message>
    <message>
        <location filename="../app.py" line="87"/>
        <source>Using the defaults.</source>
        <translation>使用默认设置。</translation>
    </message>
</context>
<context>
    <name>CandidateRow</name>
    <message>
        <location filename="../suggestions.py" line="141"/>
        <source>The ranker&apos;s score; uncalibrated until a ranker trained on the shop&apos;s own chats is active (import past dialogues under Settings → Shop knowledge)</source>
        <translation>排序模型的分数；在启用基于本店聊天记录训练的排序模型之前未经校准（在 设置 → 店铺知识 中导入历史对话）</translation>
    </message>
    <message>
        <location filename="../suggestions.py" line="145"/>
        <source>The ranker&apos;s score</source>
        <translation>排序模型的分数</translation>
    </message>
    <message>
        <location filename="../suggestions.py" line="165"/>
        <source>writing…</source>
        <translation>生成中…</translation>
    </message>
</context>
<context>
    <name>Chats</name>
    <message>
        <location filename="../chats.py" line="54"/>
        <source>No chat open. Customers appear on the left: start the replay, or add a customer with Ctrl+N.</source>
        <translation>没有打开的会话。顾客会出现在左侧：开始回放，或按 Ctrl+N 添加顾客。</translation>
    </message>
    <message>
        <location filename="../chats.py" line="75"/>
        <source>Receiving a customer message</source>
        <translation>接收顾客消息</translation>
    </message>
    <message>
        <location filename="../chats.py" line="103"/>
        <source>Reading the conversations</source>
        <translation>读取会话</translation>
    </message>
    <message>
        <location filename="../chats.py" line="148"/>
        <source>Opening the conversation</source>
        <translation>打开会话</translation>
    </message>
    <message>
        <location filename="../chats.py" line="186"/>
        <source>Closing the conversation</source>
        <translation>关闭会话</translation>
    </message>
    <message>
        <location filename="../chats.py" line="209"/>
        <source>Export the chat</source>
        <translation>导出会话</translation>
    </message>
    <message>
        <location filename="../chats.py" line="225"/>
        <source>Exporting the chat</source>
        <translation>导出会话</translation>
    </message>
    <message>
        <location filename="../chats.py" line="227"/>
        <source>Exported to {0}</source>
        <translation>已导出到 {0}</translation>
    </message>
</context>
<context>
    <name>ConversationView</name>
    <message>
        <location filename="../conversation_view.py" line="204"/>
        <source>Saving the customer&apos;s message</source>
        <translation>保存顾客消息</translation>
    </message>
    <message>
        <location filename="../conversation_view.py" line="236"/>
        <source>no end model yet: candidates only</source>
        <translation>端侧模型尚未就绪：仅显示候选回复</translation>
    </message>
    <message>
        <location filename="../conversation_view.py" line="275"/>
        <source>Finding reply candidates</source>
        <translation>查找候选回复</translation>
    </message>
    <message>
        <location filename="../conversation_view.py" line="313"/>
        <source>Sending the reply</source>
        <translation>发送回复</translation>
    </message>
    <message>
        <location filename="../conversation_view.py" line="319"/>
        <source>sent at {0}</source>
        <translation>已于 {0} 发送</translation>
    </message>
</context>
<context>
    <name>DraftPanel</name>
    <message>
        <location filename="../draft_panel.py" line="56"/>
        <source>Draft</source>
        <translation>草稿</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="76"/>
        <source>A promise that neither the conversation nor the shop&apos;s knowledge supports: check it before sending</source>
        <translation>对话和店铺知识都不支持的承诺：发送前请核实</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="89"/>
        <source>The end model&apos;s draft appears here; edit it freely.</source>
        <translation>端侧模型的草稿显示在这里，可随意修改。</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="99"/>
        <source>Teacher&apos;s reply</source>
        <translation>教师回复</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="119"/>
        <source>Send</source>
        <translation>发送</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="121"/>
        <source>Regenerate</source>
        <translation>重新生成</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="122"/>
        <source>Stop</source>
        <translation>停止</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="125"/>
        <source>Good draft</source>
        <translation>好的草稿</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="127"/>
        <source>Good draft (Ctrl+Up)</source>
        <translation>草稿不错（Ctrl+Up）</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="130"/>
        <source>Bad draft</source>
        <translation>差的草稿</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="133"/>
        <source>Bad draft (Ctrl+Down): the teacher is asked for a label</source>
        <translation>草稿不好（Ctrl+Down）：向教师模型请求标注</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="135"/>
        <source>Ask cloud</source>
        <translation>问云端</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="138"/>
        <source>Quick phrases (Ctrl+1 … Ctrl+9)</source>
        <translation>快捷短语（Ctrl+1 … Ctrl+9）</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="162"/>
        <source>The real agent answered: {0}</source>
        <translation>真实客服的回答：{0}</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="170"/>
        <source>Quick phrases…</source>
        <translation>快捷短语…</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="187"/>
        <source>Fill in before sending: {0}</source>
        <translation>发送前请填写：{0}</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="203"/>
        <source>similarity</source>
        <translation>相似度</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="204"/>
        <source>match</source>
        <translation>匹配度</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="205"/>
        <source>Final</source>
        <translation>Final</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="207"/>
        <source>Similarity to the teacher&apos;s reply; – until the teacher has answered</source>
        <translation>与教师回复的相似度；教师回复前显示 –</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="211"/>
        <source>How well the draft answers the customer (matcher); a draft that only repeats the customer&apos;s message scores 0</source>
        <translation>草稿对顾客问题的回答程度（匹配模型）；只重复顾客原话的草稿记 0 分</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="216"/>
        <source>Final = α·similarity + (1−α)·match (α {0:.2f}, Θ {1:.2f})</source>
        <translation>Final = α·相似度 + (1−α)·匹配度（α {0:.2f}，Θ {1:.2f}）</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="221"/>
        <source>fallback: similarity only</source>
        <translation>回退：仅用相似度</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="223"/>
        <source>The teacher&apos;s own match was below Θ, so Final = similarity</source>
        <translation>教师回复自身的匹配度低于 Θ，因此 Final = 相似度</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="226"/>
        <source>match only</source>
        <translation>仅匹配度</translation>
    </message>
    <message>
        <location filename="../draft_panel.py" line="228"/>
        <source>No teacher reply yet, or it only repeats the customer: Final = match</source>
        <translation>尚无教师回复，或教师回复只是重复顾客的话：Final = 匹配度</translation>
    </message>
</context>
<context>
    <name>DraftReview</name>
    <message>
        <location filename="../draft_review.py" line="68"/>
        <source>Scoring the draft</source>
        <translation>为草稿评分</translation>
    </message>
    <message>
        <location filename="../draft_review.py" line="82"/>
        <source>Saving the rating</source>
        <translation>保存评价</translation>
    </message>
    <message>
        <location filename="../draft_review.py" line="108"/>
        <source>Asking the teacher…</source>
        <translation>正在询问教师模型…</translation>
    </message>
    <message>
        <location filename="../draft_review.py" line="125"/>
        <source>What was sent to {0} ({1}):</source>
        <translation>发送给 {0}（{1}）的内容：</translation>
    </message>
    <message>
        <location filename="../draft_review.py" line="132"/>
        <source>Teacher&apos;s reply ({0})</source>
        <translation>教师回复（{0}）</translation>
    </message>
    <message>
        <location filename="../draft_review.py" line="133"/>
        <source> · cached</source>
        <translation> · 缓存</translation>
    </message>
    <message>
        <location filename="../draft_review.py" line="139"/>
        <location filename="../draft_review.py" line="145"/>
        <source>Asking the teacher</source>
        <translation>询问教师模型</translation>
    </message>
    <message>
        <location filename="../draft_review.py" line="143"/>
        <source>The teacher could not answer: {0}</source>
        <translation>教师模型无法回答：{0}</translation>
    </message>
</context>
<context>
    <name>EndModelPage</name>
    <message>
        <location filename="../settings_pages.py" line="91"/>
        <source>A built-in profile, a registered model, a GGUF file or an HF directory (e.g. ChatGLM3-6B)</source>
        <translation>内置配置、已注册模型、GGUF 文件或 HF 目录（如 ChatGLM3-6B）</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="95"/>
        <source>End model</source>
        <translation>端侧模型</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="95"/>
        <source>Browse…</source>
        <translation>浏览…</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="98"/>
        <source>Backend</source>
        <translation>后端</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="100"/>
        <source>Device</source>
        <translation>设备</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="102"/>
        <source>8-bit / 4-bit: transformers backend on a CUDA GPU</source>
        <translation>8 位 / 4 位：仅 transformers 后端在 CUDA GPU 上可用</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="103"/>
        <source>Quantization</source>
        <translation>量化</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="105"/>
        <source>GPU layers (llama.cpp)</source>
        <translation>GPU 层数（llama.cpp）</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="107"/>
        <source>Context window (tokens)</source>
        <translation>上下文窗口（token）</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="109"/>
        <source>System prompt language</source>
        <translation>系统提示语言</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="112"/>
        <source>Temperature</source>
        <translation>温度</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="115"/>
        <source>Top p</source>
        <translation>Top p</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="117"/>
        <source>Longest draft (tokens)</source>
        <translation>草稿最大长度（token）</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="121"/>
        <source>End model (GGUF)</source>
        <translation>端侧模型（GGUF）</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="124"/>
        <source>Hugging Face model directory</source>
        <translation>Hugging Face 模型目录</translation>
    </message>
</context>
<context>
    <name>ErrorBanner</name>
    <message>
        <location filename="../queue_panel.py" line="40"/>
        <source>Close</source>
        <translation>关闭</translation>
    </message>
</context>
<context>
    <name>EvolutionPanel</name>
    <message>
        <location filename="../evolution_panel.py" line="57"/>
        <location filename="../evolution_panel.py" line="59"/>
        <source>Evolve now</source>
        <translation>立即进化</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="61"/>
        <source>Stop</source>
        <translation>停止</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="63"/>
        <source>idle</source>
        <translation>空闲</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="73"/>
        <source>training loss</source>
        <translation>训练损失</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="75"/>
        <source>Warm start…</source>
        <translation>预热训练…</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="78"/>
        <source>Fine-tune the end model once on the shop&apos;s past dialogues (a warm start)</source>
        <translation>用店铺的历史对话对端侧模型做一次微调（预热训练）</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="92"/>
        <location filename="../evolution_panel.py" line="338"/>
        <source>Adapters</source>
        <translation>适配器</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="98"/>
        <source>Version</source>
        <translation>版本</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="99"/>
        <source>Status</source>
        <translation>状态</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="100"/>
        <source>Created</source>
        <translation>创建时间</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="101"/>
        <source>Promoted</source>
        <translation>启用时间</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="102"/>
        <source>Metrics</source>
        <translation>指标</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="110"/>
        <source>Promote selected</source>
        <translation>启用所选版本</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="111"/>
        <source>Roll back</source>
        <translation>回滚</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="112"/>
        <source>Use base model</source>
        <translation>使用基础模型</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="113"/>
        <source>Refresh</source>
        <translation>刷新</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="121"/>
        <source>Over time (per day)</source>
        <translation>趋势（按天）</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="124"/>
        <source>mean Final score</source>
        <translation>平均 Final 分</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="125"/>
        <source>thumbs-up rate</source>
        <translation>点赞率</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="126"/>
        <source>edit rate</source>
        <translation>修改率</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="127"/>
        <source>sent unedited</source>
        <translation>未修改直接发送</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="128"/>
        <source>cloud calls</source>
        <translation>云端调用次数</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="129"/>
        <source>cloud cost</source>
        <translation>云端费用</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="172"/>
        <source>Training is not part of this installation (missing: {0}). Drafts, scoring, the teacher and adapters work as usual. To train on this computer, install the full Xiaoer bundle, or install from source with `make run`.</source>
        <translation>此安装不含训练组件（缺少：{0}）。草稿、评分、教师模型和适配器照常可用。如需在本机训练，请安装完整版小二，或从源码用 `make run` 安装。</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="186"/>
        <source>starting…</source>
        <translation>正在启动…</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="198"/>
        <source>stopping…</source>
        <translation>正在停止…</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="211"/>
        <source>choosing training examples</source>
        <translation>挑选训练样本</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="212"/>
        <source>fetching teacher labels</source>
        <translation>获取教师标注</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="213"/>
        <source>drafting anchor replies with the base model</source>
        <translation>基础模型起草锚点回复</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="214"/>
        <source>training</source>
        <translation>训练中</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="215"/>
        <source>exporting the adapter</source>
        <translation>导出适配器</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="216"/>
        <source>gate: comparing with the active adapter</source>
        <translation>把关：与当前适配器比较</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="217"/>
        <source>promoting</source>
        <translation>正在启用</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="227"/>
        <source>{0}/{1} · ETA {2}</source>
        <translation>{0}/{1} · 预计剩余 {2}</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="238"/>
        <source>step {0}/{1} · loss {2} · ETA {3}</source>
        <translation>第 {0}/{1} 步 · loss {2} · 预计剩余 {3}</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="248"/>
        <source>promoted</source>
        <translation>已启用</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="248"/>
        <source>not promoted</source>
        <translation>未启用</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="250"/>
        <source>Candidate {0}: Final {1} vs active {2} — {3} ({4})</source>
        <translation>候选 {0}：Final {1}，当前 {2} — {3}（{4}）</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="253"/>
        <source>base model</source>
        <translation>基础模型</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="260"/>
        <source>done: {0} promoted</source>
        <translation>完成：已启用 {0}</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="262"/>
        <source>done: nothing promoted</source>
        <translation>完成：未启用新版本</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="266"/>
        <source>{0} drafts to learn from</source>
        <translation>{0} 条草稿可供学习</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="272"/>
        <source>failed</source>
        <translation>失败</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="273"/>
        <location filename="../evolution_panel.py" line="297"/>
        <source>Evolution</source>
        <translation>进化</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="285"/>
        <location filename="../evolution_panel.py" line="287"/>
        <source>stopped</source>
        <translation>已停止</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="294"/>
        <source>The evolution process ended with code {0}. {1}</source>
        <translation>进化进程已退出，退出码 {0}。{1}</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="291"/>
        <source>The evolution process was killed, most likely out of memory. {0}</source>
        <translation>进化进程被系统终止，很可能是内存不足。{0}</translation>
    </message>
    <message>
        <location filename="../evolution_panel.py" line="311"/>
        <source>Reading the evolution history</source>
        <translation>读取进化记录</translation>
    </message>
</context>
<context>
    <name>HelpOverlay</name>
    <message>
        <location filename="../shortcuts.py" line="113"/>
        <source>Keyboard shortcuts</source>
        <translation>键盘快捷键</translation>
    </message>
</context>
<context>
    <name>Inbox</name>
    <message>
        <location filename="../inbox.py" line="47"/>
        <source>Channel {0}</source>
        <translation>渠道 {0}</translation>
    </message>
    <message>
        <location filename="../inbox.py" line="60"/>
        <source>New customer</source>
        <translation>新顾客</translation>
    </message>
    <message>
        <location filename="../inbox.py" line="60"/>
        <source>The customer&apos;s message:</source>
        <translation>顾客消息：</translation>
    </message>
    <message>
        <location filename="../inbox.py" line="79"/>
        <source>Replay corpus (JDDC 2019 chat file)</source>
        <translation>回放语料（JDDC 2019 聊天文件）</translation>
    </message>
    <message>
        <location filename="../inbox.py" line="91"/>
        <source>Starting the replay</source>
        <translation>开始回放</translation>
    </message>
    <message>
        <location filename="../inbox.py" line="97"/>
        <source>Replaying {0} conversations from {1}</source>
        <translation>正在回放 {1} 中的 {0} 个会话</translation>
    </message>
</context>
<context>
    <name>KnowledgePage</name>
    <message>
        <location filename="../knowledge_page.py" line="59"/>
        <source>Past dialogues and FAQ answers the reply suggestions are drawn from. Importing a file again adds its new entries and removes those gone from it.</source>
        <translation>回复建议取自这些过往对话和常见问题答案。再次导入同一文件时，只添加新条目，并删除文件中已不存在的条目。</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="69"/>
        <source>Source</source>
        <translation>来源</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="69"/>
        <source>Kind</source>
        <translation>类型</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="69"/>
        <source>Format</source>
        <translation>格式</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="69"/>
        <source>Entries</source>
        <translation>条目数</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="81"/>
        <source>Format: from the file name</source>
        <translation>格式：按文件名判断</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="86"/>
        <source>jddc2018: train.enc + train.dec; jddc2019: a chat file; jsonl: context and reply per line; csv: customer,agent or question,answer columns; faq: Markdown (## question, then the answer) or CSV</source>
        <translation>jddc2018：train.enc + train.dec；jddc2019：聊天记录文件；jsonl：每行一组上下文和回复；csv：customer,agent 或 question,answer 列；faq：Markdown（## 问题，下面写答案）或 CSV</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="93"/>
        <source>Name (default: the file&apos;s)</source>
        <translation>名称（默认取文件名）</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="94"/>
        <source>Import…</source>
        <translation>导入…</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="97"/>
        <source>Import demo FAQ</source>
        <translation>导入演示 FAQ</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="100"/>
        <source>A made-up down-jacket shop&apos;s FAQ that ships with Xiaoer, to try suggestions</source>
        <translation>Xiaoer 自带的一家虚构羽绒服店铺的常见问题，用来试用回复建议</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="103"/>
        <source>Remove selected</source>
        <translation>删除所选</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="142"/>
        <source>Import shop knowledge</source>
        <translation>导入店铺知识</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="144"/>
        <source>Knowledge files (*.md *.csv *.jsonl *.txt *.enc);;All files (*)</source>
        <translation>知识文件 (*.md *.csv *.jsonl *.txt *.enc);;所有文件 (*)</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="155"/>
        <source>Importing {0}…</source>
        <translation>正在导入 {0}…</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="159"/>
        <source>Importing the demo FAQ…</source>
        <translation>正在导入演示 FAQ…</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="166"/>
        <source>Select a source to remove.</source>
        <translation>请先选择要删除的来源。</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="171"/>
        <source>Remove knowledge</source>
        <translation>删除知识</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="172"/>
        <source>Remove {0} and its {1} entries?</source>
        <translation>删除 {0} 及其 {1} 个条目？</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="176"/>
        <source>Removing {0}…</source>
        <translation>正在删除 {0}…</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="203"/>
        <source>{0}: {1} entries read, {2} added, {3} removed, {4} unchanged.</source>
        <translation>{0}：读取 {1} 条，新增 {2} 条，删除 {3} 条，{4} 条未变。</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="207"/>
        <source>{0} unreadable lines skipped: {1}</source>
        <translation>跳过 {0} 行无法读取的内容：{1}</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="218"/>
        <source>Removed {0} ({1} entries).</source>
        <translation>已删除 {0}（{1} 个条目）。</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="224"/>
        <source>Failed: {0}</source>
        <translation>失败：{0}</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="228"/>
        <source>Past dialogues</source>
        <translation>过往对话</translation>
    </message>
    <message>
        <location filename="../knowledge_page.py" line="228"/>
        <source>FAQ</source>
        <translation>常见问题</translation>
    </message>
</context>
<context>
    <name>LineChart</name>
    <message>
        <location filename="../charts.py" line="75"/>
        <source>no data yet</source>
        <translation>暂无数据</translation>
    </message>
</context>
<context>
    <name>LocalTeacher</name>
    <message>
        <location filename="../local_teacher.py" line="192"/>
        <source>The local teacher stopped on its own.</source>
        <translation>本地教师模型自行停止了。</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <location filename="../main_window.py" line="48"/>
        <source>Xiaoer — customer service assistant</source>
        <translation>小二 — 客服助手</translation>
    </message>
    <message>
        <location filename="../main_window.py" line="167"/>
        <source>Saving the settings</source>
        <translation>保存设置</translation>
    </message>
    <message>
        <location filename="../main_window.py" line="207"/>
        <source>a draft is being written</source>
        <translation>正在生成草稿</translation>
    </message>
    <message>
        <location filename="../main_window.py" line="209"/>
        <source>training is running</source>
        <translation>正在训练</translation>
    </message>
    <message>
        <location filename="../main_window.py" line="211"/>
        <source>the ranker is training</source>
        <translation>排序模型正在训练</translation>
    </message>
    <message>
        <location filename="../main_window.py" line="227"/>
        <source>Quit Xiaoer?</source>
        <translation>退出小二？</translation>
    </message>
    <message>
        <location filename="../main_window.py" line="229"/>
        <source>Right now {0}. Stop it and quit? Everything rated and sent is saved.</source>
        <translation>当前{0}。停止并退出吗？所有评价和已发送内容都已保存。</translation>
    </message>
    <message>
        <location filename="../main_window.py" line="230"/>
        <source> and </source>
        <translation>，并且</translation>
    </message>
</context>
<context>
    <name>ModelDraft</name>
    <message>
        <location filename="../model_draft.py" line="53"/>
        <source>queued…</source>
        <translation>排队中…</translation>
    </message>
    <message>
        <location filename="../model_draft.py" line="66"/>
        <source>writing…</source>
        <translation>生成中…</translation>
    </message>
    <message>
        <location filename="../model_draft.py" line="83"/>
        <source>no draft</source>
        <translation>无草稿</translation>
    </message>
    <message>
        <location filename="../model_draft.py" line="85"/>
        <source>Drafting a reply</source>
        <translation>生成回复草稿</translation>
    </message>
    <message>
        <location filename="../model_draft.py" line="96"/>
        <source>stopped</source>
        <translation>已停止</translation>
    </message>
    <message>
        <location filename="../model_draft.py" line="96"/>
        <source>ready</source>
        <translation>就绪</translation>
    </message>
    <message>
        <location filename="../model_draft.py" line="98"/>
        <source>past dialogues shown: {0}</source>
        <translation>参考了 {0} 段历史对话</translation>
    </message>
    <message>
        <location filename="../model_draft.py" line="143"/>
        <source>Saving the draft</source>
        <translation>保存草稿</translation>
    </message>
</context>
<context>
    <name>ModelStatus</name>
    <message>
        <location filename="../model_status.py" line="25"/>
        <location filename="../model_status.py" line="47"/>
        <source>loading the end model…</source>
        <translation>正在加载端侧模型…</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="54"/>
        <source>First start: assembling and verifying the embedded model…</source>
        <translation>首次启动：正在组装并校验内置模型…</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="61"/>
        <source>Preparing the end model</source>
        <translation>正在准备端侧模型</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="72"/>
        <source>First start: assembling and verifying the embedded model… {0} of {1} MB</source>
        <translation>首次启动：正在组装并校验内置模型… {0} / {1} MB</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="81"/>
        <source>Training the ranker: reading the shop&apos;s chats {0} of {1}…</source>
        <translation>正在训练排序模型：读取本店聊天记录 {0} / {1}…</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="85"/>
        <source>Training the ranker: learning the shop&apos;s replies, pass {0} of {1}…</source>
        <translation>正在训练排序模型：学习店铺的回复，第 {0} 轮，共 {1} 轮…</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="88"/>
        <source>Training the ranker on the shop&apos;s chats…</source>
        <translation>正在用本店聊天记录训练排序模型…</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="100"/>
        <source>Ranker {0} trained and active: candidate scores are calibrated</source>
        <translation>排序模型 {0} 已训练并启用：候选分数已校准</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="104"/>
        <source>Too little chat history to train a ranker yet: candidate scores stay uncalibrated</source>
        <translation>聊天记录太少，暂时无法训练排序模型：候选分数仍未校准</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="119"/>
        <location filename="../model_status.py" line="145"/>
        <source>end model: {0}</source>
        <translation>端侧模型：{0}</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="126"/>
        <source>no end model</source>
        <translation>无端侧模型</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="128"/>
        <source>The end model could not be loaded</source>
        <translation>无法加载端侧模型</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="131"/>
        <source>Choose another model in Settings; you can still type replies yourself.</source>
        <translation>请在设置中选择其他模型；您仍可以手动输入回复。</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="143"/>
        <source>end model: {0} + adapter {1}</source>
        <translation>端侧模型：{0} + 适配器 {1}</translation>
    </message>
    <message>
        <location filename="../model_status.py" line="149"/>
        <source>Loading the active adapter</source>
        <translation>加载当前适配器</translation>
    </message>
</context>
<context>
    <name>PrivacyPage</name>
    <message>
        <location filename="../settings_pages.py" line="380"/>
        <source>What a cloud teacher would receive (the local teacher gets the original):</source>
        <translation>云端教师模型将收到的内容（本地教师模型收到原文）：</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="386"/>
        <source>Type a customer message with a phone number, an address…</source>
        <translation>输入一条含电话号码、地址等信息的顾客消息…</translation>
    </message>
</context>
<context>
    <name>QueuePanel</name>
    <message>
        <location filename="../queue_panel.py" line="64"/>
        <source>Search customers and messages (Ctrl+F)</source>
        <translation>搜索顾客和消息（Ctrl+F）</translation>
    </message>
</context>
<context>
    <name>ScoringPage</name>
    <message>
        <location filename="../settings_pages.py" line="262"/>
        <source>α (weight of similarity)</source>
        <translation>α（相似度权重）</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="265"/>
        <source>Θ (matcher reliability threshold)</source>
        <translation>Θ（匹配模型可信阈值）</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="268"/>
        <source>Low-score threshold</source>
        <translation>低分阈值</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="270"/>
        <source>Ask the teacher for a label on a bad rating and on low scores</source>
        <translation>点踩或低分时向教师模型请求标注</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="276"/>
        <source>Off (Evolve now only)</source>
        <translation>关闭（仅手动“立即进化”）</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="277"/>
        <source>Once a day</source>
        <translation>每天一次</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="278"/>
        <source>After enough new labels</source>
        <translation>积累足够新标注后</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="282"/>
        <source>Automatic evolution</source>
        <translation>自动进化</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="284"/>
        <source>New labels before a run</source>
        <translation>触发进化所需的新标注数</translation>
    </message>
</context>
<context>
    <name>Services</name>
    <message>
        <location filename="../services.py" line="217"/>
        <source>The shop&apos;s adapter</source>
        <translation>店铺的适配器</translation>
    </message>
    <message>
        <location filename="../services.py" line="255"/>
        <source>Past dialogues</source>
        <translation>历史对话</translation>
    </message>
    <message>
        <location filename="../services.py" line="288"/>
        <source>Reply candidates</source>
        <translation>候选回复</translation>
    </message>
    <message>
        <location filename="../services.py" line="384"/>
        <source>Training the ranker</source>
        <translation>训练排序模型</translation>
    </message>
    <message>
        <location filename="../services.py" line="426"/>
        <source>The local teacher is not running: press Start beside its light in the status bar (or on the Teacher page of the settings).</source>
        <translation>本地教师模型未运行：请点状态栏中其指示灯旁的“启动”（或在设置的“教师模型”页中启动）。</translation>
    </message>
</context>
<context>
    <name>SettingsDialog</name>
    <message>
        <location filename="../settings_dialog.py" line="42"/>
        <source>Settings</source>
        <translation>设置</translation>
    </message>
    <message>
        <location filename="../settings_dialog.py" line="64"/>
        <source>End model</source>
        <translation>端侧模型</translation>
    </message>
    <message>
        <location filename="../settings_dialog.py" line="66"/>
        <source>Teacher</source>
        <translation>教师模型</translation>
    </message>
    <message>
        <location filename="../settings_dialog.py" line="68"/>
        <source>Scoring &amp;&amp; evolution</source>
        <translation>评分与进化</translation>
    </message>
    <message>
        <location filename="../settings_dialog.py" line="70"/>
        <source>Workspace</source>
        <translation>工作台</translation>
    </message>
    <message>
        <location filename="../settings_dialog.py" line="78"/>
        <source>Privacy</source>
        <translation>隐私</translation>
    </message>
    <message>
        <location filename="../settings_dialog.py" line="76"/>
        <source>Shop knowledge</source>
        <translation>店铺知识</translation>
    </message>
    <message>
        <location filename="../settings_dialog.py" line="102"/>
        <source>Wait until the knowledge import has finished.</source>
        <translation>请等待知识导入完成。</translation>
    </message>
</context>
<context>
    <name>ShopStatus</name>
    <message>
        <location filename="../shop_status.py" line="23"/>
        <source>Shop database: connected</source>
        <translation>店铺数据库：已连接</translation>
    </message>
    <message>
        <location filename="../shop_status.py" line="25"/>
        <source>Shop database unreachable: {0} ratings kept here</source>
        <translation>店铺数据库无法连接：{0} 条评价暂存在本机</translation>
    </message>
    <message>
        <location filename="../shop_status.py" line="27"/>
        <source>Shop database: connecting…</source>
        <translation>店铺数据库：连接中…</translation>
    </message>
</context>
<context>
    <name>Shortcuts</name>
    <message>
        <location filename="../shortcuts.py" line="32"/>
        <source>Send the draft (as edited)</source>
        <translation>发送草稿（含修改）</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="35"/>
        <source>Regenerate the draft</source>
        <translation>重新生成草稿</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="38"/>
        <source>Stop writing the draft</source>
        <translation>停止生成草稿</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="41"/>
        <source>Rate the draft good</source>
        <translation>给草稿点赞</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="46"/>
        <source>Rate the draft bad (the teacher is asked for a label)</source>
        <translation>给草稿点踩（向教师模型请求标注）</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="51"/>
        <source>Ask the cloud teacher</source>
        <translation>询问云端教师模型</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="54"/>
        <source>Next waiting conversation</source>
        <translation>下一个等待中的会话</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="57"/>
        <source>Next open chat</source>
        <translation>下一个已打开的会话</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="62"/>
        <source>Close the chat (conversation done)</source>
        <translation>关闭会话（已处理完）</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="67"/>
        <source>New customer (manual channel)</source>
        <translation>新顾客（手动渠道）</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="70"/>
        <source>Search the queue</source>
        <translation>搜索队列</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="75"/>
        <source>Put reply candidate 1–3 into the editor (1 is the draft)</source>
        <translation>把候选回复 1–3 放入编辑框（1 即草稿）</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="82"/>
        <source>Insert quick phrase 1–9</source>
        <translation>插入快捷短语 1–9</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="87"/>
        <source>Export the chat (Markdown or CSV)</source>
        <translation>导出会话（Markdown 或 CSV）</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="92"/>
        <source>Workspace / evolution panel</source>
        <translation>工作台 / 进化面板</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="94"/>
        <source>Settings</source>
        <translation>设置</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="96"/>
        <source>Show or hide this help</source>
        <translation>显示或隐藏本帮助</translation>
    </message>
</context>
<context>
    <name>Suggestions</name>
    <message>
        <location filename="../suggestions.py" line="40"/>
        <source>past reply</source>
        <translation>历史回复</translation>
    </message>
    <message>
        <location filename="../suggestions.py" line="41"/>
        <source>FAQ</source>
        <translation>常见问题</translation>
    </message>
    <message>
        <location filename="../suggestions.py" line="42"/>
        <source>model</source>
        <translation>模型</translation>
    </message>
    <message>
        <location filename="../suggestions.py" line="49"/>
        <source>time</source>
        <translation>时间</translation>
    </message>
    <message>
        <location filename="../suggestions.py" line="50"/>
        <source>price</source>
        <translation>价格</translation>
    </message>
    <message>
        <location filename="../suggestions.py" line="51"/>
        <source>refund</source>
        <translation>退款</translation>
    </message>
    <message>
        <location filename="../suggestions.py" line="52"/>
        <source>compensation</source>
        <translation>补偿</translation>
    </message>
    <message>
        <location filename="../suggestions.py" line="53"/>
        <source>gift</source>
        <translation>赠品</translation>
    </message>
    <message>
        <location filename="../suggestions.py" line="61"/>
        <source>Unsupported promise ({0}): {1}</source>
        <translation>未经支持的承诺（{0}）：{1}</translation>
    </message>
    <message>
        <location filename="../suggestions.py" line="71"/>
        <source>uncalibrated</source>
        <translation>未校准</translation>
    </message>
</context>
<context>
    <name>TeacherControl</name>
    <message>
        <location filename="../local_teacher.py" line="242"/>
        <source>Local teacher: stopped</source>
        <translation>本地教师模型：已停止</translation>
    </message>
    <message>
        <location filename="../local_teacher.py" line="243"/>
        <source>Local teacher: starting…</source>
        <translation>本地教师模型：启动中…</translation>
    </message>
    <message>
        <location filename="../local_teacher.py" line="244"/>
        <source>Local teacher: running</source>
        <translation>本地教师模型：运行中</translation>
    </message>
    <message>
        <location filename="../local_teacher.py" line="245"/>
        <source>Local teacher: failed</source>
        <translation>本地教师模型：出错</translation>
    </message>
    <message>
        <location filename="../local_teacher.py" line="251"/>
        <source>Stop</source>
        <translation>停止</translation>
    </message>
    <message>
        <location filename="../local_teacher.py" line="251"/>
        <source>Start</source>
        <translation>启动</translation>
    </message>
    <message>
        <location filename="../local_teacher.py" line="253"/>
        <source>Stop the local teacher</source>
        <translation>停止本地教师模型</translation>
    </message>
    <message>
        <location filename="../local_teacher.py" line="255"/>
        <source>Start the local teacher (the model loads in a minute or two)</source>
        <translation>启动本地教师模型（模型加载需要一两分钟）</translation>
    </message>
</context>
<context>
    <name>TeacherPage</name>
    <message>
        <location filename="../settings_pages.py" line="153"/>
        <source>Provider</source>
        <translation>服务商</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="156"/>
        <source>e.g. gemini-3.8-flash, deepseek-chat; empty: the default</source>
        <translation>例如 gemini-3.8-flash、deepseek-chat；留空使用默认</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="158"/>
        <source>Model</source>
        <translation>模型</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="161"/>
        <source>Base URL</source>
        <translation>接口地址</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="164"/>
        <source>Timeout (s)</source>
        <translation>超时（秒）</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="167"/>
        <source>Price per 1000 input tokens</source>
        <translation>每 1000 输入 token 价格</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="170"/>
        <source>Price per 1000 output tokens</source>
        <translation>每 1000 输出 token 价格</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="175"/>
        <source>stored only in the OS keyring</source>
        <translation>仅保存在系统钥匙串中</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="176"/>
        <source>Save key</source>
        <translation>保存密钥</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="180"/>
        <source>API key</source>
        <translation>API 密钥</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="210"/>
        <source>The local teacher needs no key.</source>
        <translation>本地教师模型无需密钥。</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="220"/>
        <source>A key is saved for {0}.</source>
        <translation>已为 {0} 保存密钥。</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="222"/>
        <source>No key saved for {0} yet.</source>
        <translation>尚未为 {0} 保存密钥。</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="238"/>
        <source>The key for {0} is saved in the OS keyring.</source>
        <translation>{0} 的密钥已保存在系统钥匙串中。</translation>
    </message>
</context>
<context>
    <name>TranscriptPane</name>
    <message>
        <location filename="../transcript.py" line="40"/>
        <source>Paste or type the customer&apos;s message and press Enter</source>
        <translation>粘贴或输入顾客消息后按回车</translation>
    </message>
    <message>
        <location filename="../transcript.py" line="42"/>
        <source>Add customer message</source>
        <translation>添加顾客消息</translation>
    </message>
    <message>
        <location filename="../transcript.py" line="82"/>
        <source>Customer</source>
        <translation>顾客</translation>
    </message>
    <message>
        <location filename="../transcript.py" line="84"/>
        <source>Shop</source>
        <translation>店铺</translation>
    </message>
    <message>
        <location filename="../transcript.py" line="86"/>
        <source>System</source>
        <translation>系统</translation>
    </message>
</context>
<context>
    <name>WarmStartDialog</name>
    <message>
        <location filename="../warm_start.py" line="59"/>
        <source>Warm start from the shop&apos;s history</source>
        <translation>用店铺历史预热训练</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="69"/>
        <source>Fine-tunes the end model once on the shop&apos;s past dialogues, in the background. The result is gated like any evolution round. Stop keeps a checkpoint: the same history and budget continue from it.</source>
        <translation>在后台用店铺的历史对话对端侧模型做一次微调，结果像每轮进化一样经过把关。停止时会保存检查点：用同样的历史和预算再次开始即可从中继续。</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="79"/>
        <source>Another file…</source>
        <translation>其他文件…</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="83"/>
        <source>Imported history</source>
        <translation>已导入的历史</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="86"/>
        <source>a history file, or a JDDC 2018 folder</source>
        <translation>历史对话文件，或 JDDC 2018 文件夹</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="87"/>
        <source>Browse…</source>
        <translation>浏览…</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="92"/>
        <source>History</source>
        <translation>历史对话</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="95"/>
        <source>from the file name</source>
        <translation>按文件名判断</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="98"/>
        <source>Format</source>
        <translation>格式</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="103"/>
        <source> thousand tokens</source>
        <translation> 千 token</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="105"/>
        <source>Budget</source>
        <translation>预算</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="107"/>
        <source>Check</source>
        <translation>检查</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="110"/>
        <location filename="../warm_start.py" line="219"/>
        <source>Check the history to see what the budget buys.</source>
        <translation>先检查历史对话，看看这个预算能训练多少。</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="119"/>
        <source>Start</source>
        <translation>开始</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="154"/>
        <source>Choose the history file first.</source>
        <translation>请先选择历史对话文件。</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="159"/>
        <source>Reading and counting the history…</source>
        <translation>正在读取并统计历史对话…</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="180"/>
        <source>exit code {0}</source>
        <translation>退出码 {0}</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="181"/>
        <source>This history can&apos;t be used: {0}</source>
        <translation>无法使用这份历史：{0}</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="191"/>
        <source>about {0} on this computer</source>
        <translation>在这台电脑上约需 {0}</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="193"/>
        <source>not known until a first warm start has run on this computer</source>
        <translation>这台电脑上还没有运行过预热训练，暂无法估计</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="197"/>
        <source>{0} past dialogues to learn from ({1} tokens; {2} held back to judge the result). This budget reads the history {3:.2f} times, after the base model drafts {4} anchor replies. Time: {5}.</source>
        <translation>可学习的历史对话 {0} 条（{1} 个 token；另留出 {2} 条用于评判结果）。这个预算会把历史读 {3:.2f} 遍，之前基础模型先起草 {4} 条锚点回复。用时：{5}。</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="208"/>
        <source>This history was already learned with this budget (version {0}): choose another budget to train again.</source>
        <translation>这份历史已按这个预算学过（版本 {0}）：要再训练，请换一个预算。</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="235"/>
        <source>The shop&apos;s past dialogues</source>
        <translation>店铺的历史对话</translation>
    </message>
    <message>
        <location filename="../warm_start.py" line="237"/>
        <source>History files (*.csv *.jsonl *.txt *.enc);;All files (*)</source>
        <translation>历史对话文件 (*.csv *.jsonl *.txt *.enc);;所有文件 (*)</translation>
    </message>
</context>
<context>
    <name>WindowActions</name>
    <message>
        <location filename="../shortcuts.py" line="154"/>
        <source>Main</source>
        <translation>主工具栏</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="160"/>
        <source>New customer</source>
        <translation>新顾客</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="162"/>
        <location filename="../shortcuts.py" line="183"/>
        <source>Start replay</source>
        <translation>开始回放</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="164"/>
        <source>Evolution</source>
        <translation>进化</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="168"/>
        <source>Settings</source>
        <translation>设置</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="170"/>
        <source>Export chat</source>
        <translation>导出会话</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="171"/>
        <source>Shortcuts</source>
        <translation>快捷键</translation>
    </message>
    <message>
        <location filename="../shortcuts.py" line="183"/>
        <source>Stop replay</source>
        <translation>停止回放</translation>
    </message>
</context>
<context>
    <name>WorkspacePage</name>
    <message>
        <location filename="../settings_pages.py" line="304"/>
        <source>Follow the system</source>
        <translation>跟随系统</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="307"/>
        <source>Language (after a restart)</source>
        <translation>界面语言（重启后生效）</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="309"/>
        <source>One quick phrase per line</source>
        <translation>每行一条快捷短语</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="310"/>
        <source>Quick phrases</source>
        <translation>快捷短语</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="313"/>
        <source>a JDDC 2019 chat file, e.g. ../shared/data/jddc2019/chat_0.1per.txt</source>
        <translation>JDDC 2019 聊天文件，例如 ../shared/data/jddc2019/chat_0.1per.txt</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="316"/>
        <location filename="../settings_pages.py" line="341"/>
        <source>Replay corpus</source>
        <translation>回放语料</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="317"/>
        <location filename="../settings_pages.py" line="334"/>
        <source>Browse…</source>
        <translation>浏览…</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="321"/>
        <source>Seconds between replay customers</source>
        <translation>回放顾客间隔（秒）</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="324"/>
        <source>a JDDC 2018 .enc file, a JDDC 2019 chat file or JSONL pairs</source>
        <translation>JDDC 2018 .enc 文件、JDDC 2019 聊天文件或 JSONL 问答对</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="328"/>
        <source>The shop&apos;s past dialogues: the end model and the teacher are shown the ones most similar to the customer&apos;s message</source>
        <translation>本店的历史对话：端侧模型和教师会参考其中与顾客消息最相似的几段</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="333"/>
        <location filename="../settings_pages.py" line="348"/>
        <source>Past dialogues</source>
        <translation>历史对话</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="337"/>
        <source>0 shows none</source>
        <translation>0 表示不参考</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="338"/>
        <source>Past dialogues shown per draft</source>
        <translation>每次草稿参考的历史对话数</translation>
    </message>
    <message>
        <location filename="../settings_pages.py" line="350"/>
        <source>Dialogues (*.enc *.txt *.jsonl);;All files (*)</source>
        <translation>对话文件 (*.enc *.txt *.jsonl);;所有文件 (*)</translation>
    </message>
</context>
</TS>
