package eddy

// uiHTML is the live page: "page" the whole document, "panel" the part
// that refreshes. No third-party code and no build step: the script
// refetches the panel every two seconds and posts the operator's actions
// with the admin token typed into the page (kept in this tab's
// sessionStorage only).
const uiHTML = `{{define "page"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>eddy: live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<noscript><meta http-equiv="refresh" content="5"></noscript>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1100px}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.2em 0 .3em}
.status span{margin-right:1.2em}.down{color:#b00;font-weight:bold}.up{color:#080}
.model{border-top:1px solid #ccc;padding-top:.4em}
.facts span{display:inline-block;margin:0 1.2em .2em 0}.facts b{font-weight:600}
.curve svg{max-width:100%;height:auto}
table{border-collapse:collapse;margin:.4em 0}td,th{padding:.15em .6em;text-align:right;border-bottom:1px solid #eee}
th{font-weight:600}tr.serving{background:#eef6ee}
button{font:inherit;padding:.1em .6em}#msg{margin-left:1em}
.note{color:#666}
</style></head><body>
<h1>eddy</h1>
<div id="auth">{{if .ActionsEnabled}}<label>admin token <input id="token" type="password" size="24" autocomplete="off"></label>
<span class="note">promote, roll back and release need a credential with the admin role</span>{{else}}<span class="note">read-only: start eddy with --auth-file to promote, roll back or release from this page</span>{{end}}<span id="msg"></span></div>
<div id="panel">{{template "panel" .}}</div>
<script>
(function(){
  var token = document.getElementById('token');
  if (token) { token.value = sessionStorage.getItem('eddy-token') || ''; token.addEventListener('change', function(){ sessionStorage.setItem('eddy-token', token.value); }); }
  var msg = document.getElementById('msg');
  function refresh(){
    fetch('/ui/panel', {cache:'no-store'}).then(function(r){ return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function(html){ var p = document.getElementById('panel'); p.innerHTML = html; p.dataset.refreshed = (+(p.dataset.refreshed || 0) + 1); msg.textContent = ''; })
      .catch(function(e){ msg.textContent = 'cannot reach eddy: ' + e; });
  }
  setInterval(refresh, 2000);
  document.getElementById('panel').addEventListener('click', function(ev){
    var b = ev.target.closest('button[data-action]');
    if (!b) return;
    var body = new URLSearchParams({action: b.dataset.action, model: b.dataset.model, version: b.dataset.version || ''});
    fetch('/ui/action', {method:'POST', body: body, headers: {'Authorization': 'Bearer ' + (token ? token.value : '')}})
      .then(function(r){ return r.json(); })
      .then(function(j){ msg.textContent = j.error ? 'refused: ' + j.error : j.model + ': serving v' + j.serving_version + (j.pinned ? ' (pinned)' : ''); refresh(); });
  });
})();
</script>
</body></html>{{end}}
{{define "panel"}}<div class="status" id="status">
<span>Kafka: {{if .BrokerUp}}<b class="up">up</b>{{else}}<b class="down">unreachable</b>{{end}}</span>
<span>consumer lag: <b id="lag">{{printf "%.0f" .Lag}}</b> messages</span>
<span>consumed: <b>{{rate .EventsPerSecond}}</b> events/s</span>
<span>dead-lettered: <b>{{.DeadLettered}}</b></span>
<span class="note">updated {{time .Updated}} UTC</span>
</div>
{{range .Models}}<section class="model" id="model-{{.Name}}" data-model="{{.Name}}">
<h2>{{.Name}} <span class="note">({{.Task}})</span></h2>
<div class="facts">
<span>serving <b class="served-version" data-version="{{.ServedVersion}}">{{if .ServedVersion}}v{{.ServedVersion}}{{else}}nothing yet{{end}}</b>{{if .Pinned}} (pinned){{end}}</span>
<span>{{.Metric}} over the newest rows: live <b>{{if eq .Metric "MAE"}}{{num .Rolling}}{{else}}{{pct .Rolling}}{{end}}</b>, served <b>{{if eq .Metric "MAE"}}{{num .Served}}{{else}}{{pct .Served}}{{end}}</b></span>
<span>learned here: <b>{{rate .EventsPerSecond}}</b> events/s{{if not .Learning}} <span class="note">(learned on another instance)</span>{{end}}</span>
<span>Predict: <b>{{rate .PredictPerSec}}</b>/s, p50 <b>{{ms .PredictP50}}</b>, p99 <b>{{ms .PredictP99}}</b></span>
<span>drifts detected: <b>{{.Detections}}</b></span>
</div>
<div class="curve" data-points="{{.Points}}">{{if .SVG}}{{.SVG}}{{else}}<p class="note">no curve yet: the model's metrics appear at its first checkpoint</p>{{end}}</div>
{{if .Snapshots}}<table class="snapshots"><tr><th>version</th><th>created (UTC)</th><th>reason</th><th>learned</th><th>rolling</th><th></th></tr>
{{$m := .Name}}{{range .Snapshots}}<tr{{if .Serving}} class="serving"{{end}}><td>v{{.Version}}</td><td>{{time .Created}}</td><td>{{.Reason}}</td><td>{{.Learned}}</td><td>{{f4 .Rolling}}</td>
<td>{{if .Serving}}serving{{if .Pinned}}, pinned{{end}}{{else if $.ActionsEnabled}}<button data-action="promote" data-model="{{$m}}" data-version="{{.Version}}">serve this</button>{{end}}</td></tr>
{{end}}</table>
{{if $.ActionsEnabled}}<button data-action="rollback" data-model="{{.Name}}">roll back</button> <button data-action="release" data-model="{{.Name}}">release (automatic promotion)</button>{{end}}
{{else}}<p class="note">{{.SnapshotsNote}}</p>{{end}}
</section>
{{end}}{{end}}`
