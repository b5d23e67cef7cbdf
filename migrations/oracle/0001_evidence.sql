CREATE TABLE "oracle_evidence" (
	"digest" text PRIMARY KEY NOT NULL,
	"epoch" integer NOT NULL,
	"payer" text NOT NULL,
	"suspect" text NOT NULL,
	"suspect_peer_id" text NOT NULL,
	"checker" text NOT NULL,
	"checker_peer_id" text NOT NULL,
	"block_start" integer NOT NULL,
	"block_end" integer NOT NULL,
	"position" integer NOT NULL,
	"deviation" double precision NOT NULL,
	"body" jsonb NOT NULL,
	"reported_at" bigint NOT NULL,
	"accepted_at" timestamp with time zone NOT NULL,
	"slash_tx" text,
	"slash_error" text
);
--> statement-breakpoint
CREATE INDEX "oracle_evidence_epoch_suspect_idx" ON "oracle_evidence" USING btree ("epoch","suspect");--> statement-breakpoint
CREATE INDEX "oracle_evidence_suspect_idx" ON "oracle_evidence" USING btree ("suspect");